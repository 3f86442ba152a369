"""The advanced example: Chicago taxi trips -> will the rider tip more than 20% of the fare?"""
