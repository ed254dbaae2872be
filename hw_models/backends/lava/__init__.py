"""The Lava backend: our process models (``procs``) and the watchdog runner (``runner``)."""
