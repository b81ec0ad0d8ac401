"""Optional bridges from the zoo to other libraries' model registries (:mod:`.timm`).

Nothing here is imported by ``igc`` itself; each bridge imports its library only when
called and is a no-op, with one clear line, where that library is not importable.
"""
