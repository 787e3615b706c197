"""What API calls cost: the price table (`pricing`), estimates before a run (`estimate`), the spend
limit during one (`budget`), and the spend of stored runs (`spent`). Nothing here calls a model."""
