import Synchronization

/// Counts, per checkpoint, the loaded layers that map its files; garbage collection skips pinned ones.
final class CheckpointPins: Sendable {
    private let counts = Mutex<[Height: Int]>([:])

    /// A token that pins `height` until it is released.
    func pin(_ height: Height) -> Pin {
        counts.withLock { $0[height, default: 0] += 1 }
        return Pin(height: height, pins: self)
    }

    func isPinned(_ height: Height) -> Bool { counts.withLock { $0[height] != nil } }

    fileprivate func unpin(_ height: Height) {
        counts.withLock { counts in
            counts[height]! -= 1
            if counts[height] == 0 { counts[height] = nil }
        }
    }

    /// Held by every layer loaded from a checkpoint.
    final class Pin: Sendable {
        let height: Height
        private let pins: CheckpointPins

        fileprivate init(height: Height, pins: CheckpointPins) {
            self.height = height
            self.pins = pins
        }

        deinit { pins.unpin(height) }
    }
}
