import sys
from pathlib import Path

# plateseg_train and archs are imported as top-level packages from training/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
