pytest_plugins = ["fixtures_hf"]
