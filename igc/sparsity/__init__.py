"""The mathematics of structured-sparse kernel products (pure Python/NumPy, no modules)."""

from igc.sparsity.cost import (
    balance_gap,
    balanced_branch_sizes,
    best_layers,
    best_layers_real,
    params_bound,
    params_formula,
)
from igc.sparsity.design import Design, DesignReport, design, divisors, factorizations
from igc.sparsity.product import (
    DENSE,
    RELAXED,
    SPARSE,
    STRICT,
    Connectivity,
    Factor,
    KernelProduct,
    nonzero_ratio,
    shuffle_permutation,
)

__all__ = [
    "DENSE", "RELAXED", "SPARSE", "STRICT", "Connectivity", "Design", "DesignReport", "Factor",
    "KernelProduct", "balance_gap", "balanced_branch_sizes", "best_layers", "best_layers_real",
    "design", "divisors", "factorizations", "nonzero_ratio", "params_bound", "params_formula",
    "shuffle_permutation",
]
