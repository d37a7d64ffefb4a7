"""The pieces of docs/BENCHMARKS.md: one module per benchmark suite (``core``, ``features``,
``multimodal``, ``learned`` (its rows with learned image features), ``popularity``, ``kg`` with
the case study, ``multikg_speed``, ``ctr``, ``sequential``, ``rating``, ``kgbm4rec``,
``coldstart``, ``explain``, ``latency``, ``load``, ``scale``, ``reproduce``, ``gpu``), each with a
``section()`` that returns the section's lines, over the shared loading and table helpers
(``tables``) and statistics (``stats``). ``benchmarks/report.py`` assembles them."""
