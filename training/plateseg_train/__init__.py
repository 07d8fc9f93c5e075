"""Training of plateseg's three networks (YOLOX, Mask R-CNN, UPerNet) on the Sartorius data."""
