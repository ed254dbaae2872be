"""shim"""
import sys

from neuro_agmm.deploy.crosscheck import main

if __name__ == "__main__":
    sys.exit(main())
