package engine

// Capabilities are the optional interfaces an engine implements, resolved
// once (by CapabilitiesOf) so that callers test a field instead of asserting
// a type at every call site. A nil field: the engine lacks that capability.
type Capabilities struct {
	File         FileEngine
	SingleWriter SingleWriter
	TableChecker TableChecker
	Locker       Locker
	AutoSyncer   AutoSyncer
	TwoPhaser    TwoPhaser
	WithInserter WithInserter
	StallBounder StallBounder
	Checksummer  Checksummer
	Capturer     Capturer
	Violator     Violator
	Copier       Copier
	Vacuumer     CaptureVacuumer
}

// CapabilitiesOf returns the optional interfaces e implements.
func CapabilitiesOf(e Engine) Capabilities {
	var c Capabilities
	c.File, _ = e.(FileEngine)
	c.SingleWriter, _ = e.(SingleWriter)
	c.TableChecker, _ = e.(TableChecker)
	c.Locker, _ = e.(Locker)
	c.AutoSyncer, _ = e.(AutoSyncer)
	c.TwoPhaser, _ = e.(TwoPhaser)
	c.WithInserter, _ = e.(WithInserter)
	c.StallBounder, _ = e.(StallBounder)
	c.Checksummer, _ = e.(Checksummer)
	c.Capturer, _ = e.(Capturer)
	c.Violator, _ = e.(Violator)
	c.Copier, _ = e.(Copier)
	c.Vacuumer, _ = e.(CaptureVacuumer)
	return c
}

// SameFile reports whether two resolved DSNs, of engines ea and eb, name
// one database file (two paths, a symbolic link, a hard link): for engines
// whose databases are files (FileEngine).
func SameFile(ea Engine, a string, eb Engine, b string) bool {
	fe := CapabilitiesOf(eb).File
	return fe != nil && ea.Name() == eb.Name() && fe.SameFile(a, b)
}
