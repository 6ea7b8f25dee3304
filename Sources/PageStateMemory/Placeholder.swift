public enum MemoryPlaceholder {}
