# decode heads (mmseg); each module registers itself on import
