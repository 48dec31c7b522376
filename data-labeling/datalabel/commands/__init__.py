"""The commands of `datalabel`, one module per noun (a typer `app` of sub-commands) or per single command;
`cli.py` registers each by name.

Each command parses its options, calls library functions, prints the result. Library modules are imported
inside the command functions, so `datalabel --help` and each command start without loading what others need.
"""
