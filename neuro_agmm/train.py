"""shim"""
import sys

from neuro_agmm.training.loop import main

if __name__ == "__main__":
    sys.exit(main())
