package imap

// cmdClass says what the bridge must know about a client command to keep
// the session's state and to survive an upstream cut.
type cmdClass struct {
	// replay: the command has no effect a second run could double, so if
	// the upstream is cut before any of its response reached the client it
	// is sent again on the new upstream session.
	replay bool
	// noExpunge: the server must not send EXPUNGE while answering it (RFC
	// 3501 §7.4.1: FETCH, STORE, SEARCH — not their UID forms), so the
	// bridge may not either.
	noExpunge bool
	// seq: the command names messages by sequence number, so while the
	// client's view lags the upstream's (after a resume, before the
	// EXPUNGEs could be delivered) it must be translated.
	seq  bool
	kind cmdKind
}

type cmdKind uint8

const (
	kindOther cmdKind = iota
	kindSelect
	kindExamine
	kindDeselect // CLOSE, UNSELECT
	kindEnable
	kindIdle
	kindLogout
	kindID
	kindStartTLS
	kindCompress
	kindSearch // SEARCH, SORT, THREAD: results carry sequence numbers
)

// classes lists the commands the bridge treats specially; anything else
// is relayed, not replayed, and allows EXPUNGE.
var classes = map[string]cmdClass{
	"CAPABILITY":   {replay: true},
	"NOOP":         {replay: true},
	"CHECK":        {replay: true},
	"ID":           {replay: true, kind: kindID},
	"LOGOUT":       {kind: kindLogout},
	"STARTTLS":     {kind: kindStartTLS},
	"COMPRESS":     {kind: kindCompress},
	"IDLE":         {replay: true, kind: kindIdle},
	"ENABLE":       {replay: true, kind: kindEnable},
	"SELECT":       {replay: true, kind: kindSelect},
	"EXAMINE":      {replay: true, kind: kindExamine},
	"CLOSE":        {kind: kindDeselect}, // expunges: not replayable
	"UNSELECT":     {replay: true, kind: kindDeselect},
	"LIST":         {replay: true},
	"LSUB":         {replay: true},
	"XLIST":        {replay: true},
	"STATUS":       {replay: true},
	"NAMESPACE":    {replay: true},
	"GETQUOTA":     {replay: true},
	"GETQUOTAROOT": {replay: true},
	"GETACL":       {replay: true},
	"MYRIGHTS":     {replay: true},
	"LISTRIGHTS":   {replay: true},
	"GETMETADATA":  {replay: true},

	"FETCH":      {replay: true, noExpunge: true, seq: true},
	"UID FETCH":  {replay: true},
	"SEARCH":     {replay: true, noExpunge: true, seq: true, kind: kindSearch},
	"UID SEARCH": {replay: true},
	"SORT":       {replay: true, noExpunge: true, seq: true, kind: kindSearch},
	"UID SORT":   {replay: true},
	"THREAD":     {replay: true, noExpunge: true, seq: true, kind: kindSearch},
	"UID THREAD": {replay: true},
	"STORE":      {noExpunge: true, seq: true},
	"COPY":       {seq: true},
	"MOVE":       {seq: true},
}

func classify(name string) cmdClass {
	return classes[name]
}
