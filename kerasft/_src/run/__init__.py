"""One fine-tuning run: config, data, strategies, the phase loop, the report.

`config` validates the options (one dataclass, whose fields the `kerasft
finetune` flags are made from), `data` loads the images, `model` builds
the classifier, `strategies` holds the registry of named strategies,
`loop` runs the phases and `report` writes the run folder.
"""
