"""Applications, request streams and their outcomes, and the dispatcher protocol."""
