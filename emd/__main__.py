from emd.cli import app

app(prog_name="emd")
