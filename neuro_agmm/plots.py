"""shim"""
import sys

from neuro_agmm.training.curves import main

if __name__ == "__main__":
    sys.exit(main())
