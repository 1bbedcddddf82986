"""Several processes (hosts) fine-tuning one model: JAX multi-controller.

- `cluster.py`: who am I, how many are we, where is the coordinator (from
  arguments, JAX's, Keras's, SLURM's or an indexed Kubernetes Job's
  environment), and `initialize`, which starts JAX's distributed runtime
  with bounded timeouts.
- `shard.py`: each process's part of every global batch.
- `backup.py`: a `BackupAndRestore` whose backups survive a lost worker.
- `refusals.py`: the setups that cannot work, refused with a reason.
"""
