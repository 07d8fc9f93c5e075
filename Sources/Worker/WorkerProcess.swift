import Dispatch
import Foundation
import JobStore
import Logging

/// Runs a process's worker loops, each on its own thread, until they return. SIGTERM and
/// SIGINT ask every loop to stop after the job in hand, so a stopped worker loses no work.
public enum WorkerProcess {
    /// Returns why the process gave up early (a damaged database), or nil.
    @discardableResult
    public static func run(_ loops: [WorkerLoop], logger: Logger) -> JobStoreError? {
        let sources = [SIGTERM, SIGINT].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                logger.notice("signal \(sig): finishing the job in hand, then exiting")
                loops.forEach { $0.stop() }
            }
            source.resume()
            return source
        }
        let group = DispatchGroup()
        for loop in loops {
            group.enter()
            Thread {
                loop.run()
                // One loop meeting a damaged database stops its siblings: they share the file.
                if loop.failure != nil { loops.forEach { $0.stop() } }
                group.leave()
            }.start()
        }
        group.wait()
        sources.forEach { $0.cancel() }
        return loops.lazy.compactMap(\.failure).first
    }

    /// `slots` loops on one store (`plateseg worker --concurrency`), each its own owner
    /// (`WorkerOwner.name(slot:)`) and otherwise as `options` says.
    @discardableResult
    public static func run(store: any JobStore, handlers: [String: any JobHandler], slots: Int, options: WorkerLoop.Options,
                           logger: Logger) -> JobStoreError? {
        run((0..<max(1, slots)).map { i in
            var own = options
            own.owner = WorkerOwner.name(slot: i)
            return WorkerLoop(store: store, handlers: handlers, options: own, logger: logger)
        }, logger: logger)
    }
}
