"""shim"""
import sys

from neuro_agmm.training.export import main

if __name__ == "__main__":
    sys.exit(main())
