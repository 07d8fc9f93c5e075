import Testing

/// The suites that run int8 convolutions in this process run one test at a time. On an Intel
/// Xeon with AMX (oneDNN 2.6), an int8 convolution's output differed from run to run when test
/// cases on several threads ran int8 layers, also with every oneDNN execution behind one lock,
/// and never when the same cases ran one after another (docs/reliability.md, "Time in the
/// tests"). Workers run one loop per process by default; `--concurrency` above 1 shares it.
@Suite(.serialized) enum Int8InProcess {}
