import Imaging
import Testing

/// File names as a manifest, a truth file or a folder may give them; Foundation's NSString path
/// methods trapped on the first.
@Suite struct PathNameTests {
    @Test func namesWithDoubleSlashesAndLettersBeyondASCII() {
        #expect(PathName.file("scans//étoile.png") == "étoile.png")
        #expect(PathName.stem("scans//étoile.png") == "étoile")
        #expect(PathName.withoutExtension("scans//étoile.png") == "scans/étoile")
        #expect(PathName.fileExtension("a/Zelle.ä.TIF") == "TIF")
        #expect(PathName.normalized("a//b/") == "a/b")
        #expect(PathName.joined("/plates/P", "x.png") == "/plates/P/x.png")
    }

    @Test func hiddenFilesAndNamesWithoutExtensionKeepTheirName() {
        #expect(PathName.stem("b/.hidden") == ".hidden" && PathName.fileExtension("b/.hidden") == "")
        #expect(PathName.withoutExtension("b.d/x") == "b.d/x" && PathName.fileExtension("png") == "")
        #expect(PathName.stem("a.tar.gz") == "a.tar" && PathName.file("/") == "/")
    }

    /// FilePath ends a text at a NUL; a name holding one is no path and stays whole.
    @Test func aNameHoldingANulIsLeftWhole() {
        #expect(PathName.file("a/x.png\u{0}/y") == "a/x.png\u{0}/y")
        #expect(PathName.normalized("a//x.png\u{0}") == "a//x.png\u{0}")
        #expect(PathName.fileExtension("x\u{0}.png") == "")
    }
}
