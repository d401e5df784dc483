"""Multi-input networks (Design 1). TEMPORARY STUB: being written."""
DSSLayer = DeepSetsLayer = ISLayer = MultiInputNetwork = None
