from paas_cli.main import run

run()
