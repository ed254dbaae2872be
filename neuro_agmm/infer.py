"""shim"""
import sys

from neuro_agmm.streaming.run import main

if __name__ == "__main__":
    sys.exit(main())
