import Foundation
import GRDB
import JobStore
import Testing

/// A database written by a newer plateseg is refused, with what to do, and left as it was.
@Suite struct SchemaTests {
    @Test(arguments: Driver.allCases)
    func aNewerSchemaIsRefusedAndLeftAlone(driver: Driver) throws {
        let location = try driver.freshLocation()
        _ = try openJobStore(location)
        switch driver {
        case .sqlite:
            try DatabaseQueue(path: location).write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99')") }
        case .postgres:
            try TestPostgres.psql(location, "INSERT INTO plateseg_schema (version) VALUES (99)")
        }
        #expect { try openJobStore(location) } throws: { "\($0)".contains("newer") && "\($0)".contains("plateseg") }
        switch driver {
        case .sqlite:
            #expect(try DatabaseQueue(path: location).read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") } == ["v1", "v2", "v3", "v4", "v5", "v99"])
        case .postgres:
            #expect(try TestPostgres.psql(location, "SELECT string_agg(version::text, ',' ORDER BY version) FROM plateseg_schema") == "1,2,3,4,5,6,99")
        }
    }

    @Test(arguments: Driver.allCases)
    func storesOpenedTogetherOnANewDatabaseMakeTheSchemaOnce(driver: Driver) throws {
        let location = try driver.freshLocation()
        let opened = ClaimLog()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            if (try? openJobStore(location)) != nil { opened.add(Int64(i)) }
        }
        #expect(opened.ids.count == 4)
        _ = try openJobStore(location).submit(samplePlate())
    }
}
