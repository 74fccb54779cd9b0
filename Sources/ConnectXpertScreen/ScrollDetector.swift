import Foundation

/// Finds where the screen scrolled, so that a viewer can be told to copy what it already has
/// (CopyRect) instead of being sent those pixels again.
enum ScrollDetector {
    /// A band of the new frame that is a band of the old one moved up or down.
    struct Copy: Equatable {
        /// Where the band is now.
        var x: Int, y: Int, width: Int, height: Int
        /// Where it was (same x).
        var sourceY: Int
    }

    /// The largest vertically moved band inside `box` (at least `minimumRows` rows), or `nil`.
    /// Rows are matched by hash, ignoring rows too common to tell anything (plain background),
    /// then checked pixel by pixel.
    static func find(old: Frame, new: Frame, in box: (x: Int, y: Int, width: Int, height: Int), minimumRows: Int = 16) -> Copy? {
        guard old.width == new.width, old.height == new.height, box.height >= minimumRows, box.width >= 16 else { return nil }
        var oldRows: [UInt64: [Int]] = [:]
        for row in 0..<old.height {
            let hash = rowHash(old, row, box.x, box.width)
            if oldRows[hash, default: []].count <= 4 { oldRows[hash, default: []].append(row) }
        }
        var votes: [Int: Int] = [:]
        for row in box.y..<(box.y + box.height) {
            guard let candidates = oldRows[rowHash(new, row, box.x, box.width)], candidates.count <= 4 else { continue }
            for candidate in candidates where candidate != row { votes[candidate - row, default: 0] += 1 }
        }
        guard let (offset, count) = votes.max(by: { $0.value < $1.value }), count >= minimumRows else { return nil }
        // The longest run of rows that really moved by `offset`.
        var best: (start: Int, length: Int) = (0, 0)
        var runStart: Int?
        for row in box.y...(box.y + box.height) {
            let matches = row < box.y + box.height && (0..<old.height).contains(row + offset)
                && rowsEqual(new, row, old, row + offset, box.x, box.width)
            if matches, runStart == nil { runStart = row }
            if !matches, let start = runStart {
                if row - start > best.length { best = (start, row - start) }
                runStart = nil
            }
        }
        guard best.length >= minimumRows else { return nil }
        return Copy(x: box.x, y: best.start, width: box.width, height: best.length, sourceY: best.start + offset)
    }

    /// `frame` as the viewer has it after carrying out `copy` on it.
    static func apply(_ copy: Copy, to frame: Frame) -> Frame {
        var result = frame
        for row in 0..<copy.height {
            let source = (copy.sourceY + row) * frame.width + copy.x
            let destination = (copy.y + row) * frame.width + copy.x
            result.pixels.replaceSubrange(destination..<(destination + copy.width), with: frame.pixels[source..<(source + copy.width)])
        }
        return result
    }

    private static func rowHash(_ frame: Frame, _ row: Int, _ x: Int, _ width: Int) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        frame.pixels.withUnsafeBufferPointer { pixels in
            for pixel in pixels[(row * frame.width + x)..<(row * frame.width + x + width)] {
                hash = (hash ^ UInt64(pixel)) &* 0x0000_0100_0000_01b3
            }
        }
        return hash
    }

    private static func rowsEqual(_ a: Frame, _ rowA: Int, _ b: Frame, _ rowB: Int, _ x: Int, _ width: Int) -> Bool {
        a.pixels.withUnsafeBufferPointer { first in
            b.pixels.withUnsafeBufferPointer { second in
                memcmp(first.baseAddress! + rowA * a.width + x, second.baseAddress! + rowB * b.width + x, width * 4) == 0
            }
        }
    }
}
