namespace rd {}
