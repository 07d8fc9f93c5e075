import Foundation
import Testing
import Worker

@Suite struct PathMapTests {
    @Test func theLongestMatchingPrefixIsMapped() throws {
        let map = try PathMap(parsing: ["/shared=/mnt/a", "/shared/plates/=/data/plates"])
        #expect(map.local("/shared/plates/P1/B02.png") == "/data/plates/P1/B02.png")
        #expect(map.local("/shared/other/x.png") == "/mnt/a/other/x.png")
        #expect(map.local("/shared") == "/mnt/a")
        #expect(map.local("/sharedfolder/x.png") == "/sharedfolder/x.png", "a prefix is a whole folder")
        #expect(map.local("/elsewhere/x.png") == "/elsewhere/x.png")
    }

    @Test func aMalformedRuleNamesItself() {
        for rule in ["/a", "a=/b", "/a=b", "=/b"] {
            #expect { try PathMap(parsing: [rule]) } throws: { "\($0)".contains("--path-map \(rule)") }
        }
    }
}
