"""The board notebook (``antq_on_pynq.ipynb``); ``pynq get-notebooks`` finds it via the
``pynq.notebooks`` entry point."""
