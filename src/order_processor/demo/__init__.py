"""`make run`: the demo's load, its runner and the price feeds it moves prices with."""
