"""Reusable layers and losses, named for what they compute; each cites where it comes from.

* :mod:`~mmkgrec.nn.propagation`: LightGCN's light graph convolution, KGAT's knowledge-aware
  attentive propagation (``KnowledgePropagation``), MMGCN's per-modality graph convolution.
* :mod:`~mmkgrec.nn.kg`: TransR / TransE, knowledge-aware attention with an edge softmax, the
  KGAT and KGCN aggregators.
* :mod:`~mmkgrec.nn.transformer`: one attention function, the post-LN Transformer block,
  BERT-style initialisation, fast dropout.
* :mod:`~mmkgrec.nn.fusion`: Multi-KG4Rec's cross-modal fusion, MM-RACL-KAL's gated fusion.
* :mod:`~mmkgrec.nn.losses`: BPR, L2 per batch, InfoNCE and its decoupled form.
"""
