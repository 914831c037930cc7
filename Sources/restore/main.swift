print("restore")
