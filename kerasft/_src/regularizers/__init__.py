"""Penalties for fine-tuning that speak in stages.

`penalty.StagePenalty` attaches an L2 term to the variables of chosen
stages through Keras's per-variable hook, `variable.regularizer`; `l2sp.L2SP`
and `l2.L2` specialise it, and `strength_schedule.StrengthSchedule` changes
their strengths during `fit`. Re-initialization lives in
`kerasft._src.reinitialize`.
"""
