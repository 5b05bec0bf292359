"""Planning: policies, the router, the plan simulator, the search, goals and schedulers."""
