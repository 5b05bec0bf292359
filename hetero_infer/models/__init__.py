"""DNN models as layer tables: the zoo, ONNX import and the DLA placement rules."""
