"""The field's safety classifiers as judges: a base (`base.PromptedClassifier`: a model spec, a prompt
builder, a verdict parser and a declared scale) and one module per classifier family: `llamaguard3`,
`llamaguard4`, `wildguard`, `harmbench`, `shieldgemma`; `categories` holds the hazard taxonomies
(MLCommons S1-S14 and the nine AMA principles as custom categories).

Each module registers its judges by name in `judging.registry.JUDGES`; nothing is imported here, so
choosing one classifier never loads another.
"""
