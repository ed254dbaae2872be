"""From an artifact to cores: quantizer, placer, the ``/hardware`` section, netx export/import."""
