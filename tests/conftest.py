pytest_plugins = ["fixtures_openai", "fixtures_hf", "fixtures_classifiers"]
