"""The SSH front: agents' ssh, scp, sftp, paramiko and asyncssh reach hosts through tollgate."""
