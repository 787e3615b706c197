pytest_plugins = ["fixtures_openai", "fixtures_hf", "fixtures_ray", "fixtures_classifiers"]
