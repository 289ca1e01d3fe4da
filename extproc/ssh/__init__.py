"""The SSH front: agents' ssh, scp, sftp, paramiko and asyncssh reach hosts through tollgate.

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""
