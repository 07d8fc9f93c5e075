import Imaging
import Testing

@Suite struct ResamplingTests {
    @Test func halvingAveragesEachTwoByTwoBlock() {
        let image = GrayImage(width: 4, height: 2, pixels: [0, 10, 200, 100,
                                                            20, 30, 50, 50])
        #expect(image.resampled(width: 2, height: 1).pixels == [15, 100])
    }

    @Test func enlargingInterpolatesBetweenPixelCentres() {
        let image = GrayImage(width: 2, height: 1, pixels: [0, 200])
        // Centres of the 4 target pixels fall at source x = -0.25, 0.25, 0.75, 1.25.
        #expect(image.resampled(width: 4, height: 1).pixels == [0, 50, 150, 200])
        #expect(image.resampled(width: 2, height: 1) == image)
    }

    @Test func aFlatFieldStaysFlatAtAnyScale() {
        let flat = GrayImage(width: 37, height: 23, fill: 93)
        for (w, h) in [(18, 11), (13, 7), (74, 46), (50, 31)] {
            #expect(flat.resampled(width: w, height: h).pixels.allSatisfy { $0 == 93 }, "\(w)x\(h)")
        }
    }

    @Test func aMaskDoubledAndHalvedComesBackExactly() {
        var bits = [UInt8](repeating: 0, count: 30 * 20)
        for y in 4..<11 { for x in 3..<(9 + y % 3) { bits[y * 30 + x] = 1 } }
        let mask = Mask(imageWidth: 30, imageHeight: 20, pixels: bits)
        let doubled = mask.rescaled(imageWidth: 60, imageHeight: 40)
        #expect(doubled.area == 4 * mask.area)
        #expect(doubled.box == PixelRect(x: 2 * mask.box.x, y: 2 * mask.box.y, width: 2 * mask.box.width, height: 2 * mask.box.height))
        #expect(doubled.rescaled(imageWidth: 30, imageHeight: 20) == mask)
    }

    @Test func masksThatDidNotOverlapStillDoNot() {
        var a = [UInt8](repeating: 0, count: 20 * 20), b = a
        for y in 0..<20 { for x in 0..<20 { if (x + y) % 2 == 0 { a[y * 20 + x] = 1 } else { b[y * 20 + x] = 1 } } }
        let ma = Mask(imageWidth: 20, imageHeight: 20, pixels: a), mb = Mask(imageWidth: 20, imageHeight: 20, pixels: b)
        for (w, h) in [(13, 9), (31, 47)] {
            #expect(ma.rescaled(imageWidth: w, imageHeight: h).intersectionArea(mb.rescaled(imageWidth: w, imageHeight: h)) == 0)
        }
    }

    @Test func fieldScaleRoundsOneWayForSubmitterAndWorker() {
        let twentyX = FieldScale(fieldPixelSize: 0.62, networkPixelSize: 1.24)
        #expect(twentyX.factor == 0.5)
        #expect(twentyX.size(width: 2160, height: 2561) == (1080, 1281))
        #expect(FieldScale(factor: 0.001).size(width: 10, height: 10) == (1, 1))
    }
}
