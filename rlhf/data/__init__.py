"""Data: raw rows -> typed examples (`helpsteer2`), text templates (`templates`), the synthetic world (`synthetic`)."""
