print("plateseg")
