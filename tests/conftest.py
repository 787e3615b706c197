pytest_plugins = ["fixtures_openai"]
