package sqlitesafe

import (
	"strings"
	"sync"
	"sync/atomic"
)

// stmtFlags is what the driver needs to know about a query text to route it.
// A query that holds several statements carries the union of their flags.
type stmtFlags uint16

const (
	// flagWrite: the query may change the main database file, or its
	// effect is not known. It runs on the writer, under the writer queue.
	flagWrite stmtFlags = 1 << iota
	// flagBatchable: exactly one INSERT, UPDATE, DELETE or REPLACE
	// statement (a WITH prefix and a RETURNING clause allowed) and nothing
	// else. Such a write may share a group commit with others.
	flagBatchable
	// flagSession: the query creates state local to its connection: a
	// TEMP table, view, trigger or index, ATTACH or DETACH, or a PRAGMA
	// assignment that is a setting of the connection (foreign_keys,
	// cache_size, ...).
	flagSession
	// flagBegin: a BEGIN statement.
	flagBegin
	// flagSavepoint: a SAVEPOINT statement.
	flagSavepoint
	// flagTxEnd: COMMIT, END, ROLLBACK (not ROLLBACK TO) or RELEASE.
	flagTxEnd
	// flagTxControl: any transaction control statement: BEGIN, SAVEPOINT,
	// COMMIT, END, ROLLBACK (with or without TO), RELEASE.
	flagTxControl
	// flagMulti: more than one statement.
	flagMulti
	// flagJournalMode: a PRAGMA journal_mode assignment. Leaving WAL needs
	// the other connections to the file closed.
	flagJournalMode
	// flagNoTx: a statement SQLite refuses or cannot finish inside a
	// transaction: VACUUM, a PRAGMA journal_mode assignment, PRAGMA
	// wal_checkpoint.
	flagNoTx
)

// String spells f out, as "write|batchable", or "read" for no flags, for
// logs and test messages.
func (f stmtFlags) String() string {
	if f == 0 {
		return "read"
	}
	names := [...]string{"write", "batchable", "session", "begin", "savepoint", "txEnd", "txControl", "multi", "journalMode", "noTx"}
	var b strings.Builder
	for i, n := range names {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// stmtInfo is the classification of one query text. It is computed once per
// text and cached, so it must not be modified after classify returns it.
type stmtInfo struct {
	flags stmtFlags
	// facts are what a dqlite cluster needs to know besides the routing:
	// what the statement answers, and the statements it must refuse.
	facts stmtFacts
	// begins holds, in text order, one edit for each statement-level BEGIN
	// that does not already say IMMEDIATE or EXCLUSIVE. withBegin applies
	// them; a query without such a BEGIN has none.
	begins []beginEdit
}

// beginEdit says where withBegin puts the lock word of one BEGIN statement,
// as byte offsets into the classified text. When from == to the word is
// inserted there, right after the BEGIN keyword, with a space before it;
// otherwise it replaces text[from:to], which is the keyword DEFERRED.
type beginEdit struct {
	from, to int
}

// The bounds of the classification cache. A generation of the cache is
// dropped for a fresh one when it holds more than classifyCacheEntries texts
// or classifyCacheBytes bytes of text, so a program that inlines values into
// its SQL costs a bounded amount of memory. Texts longer than
// classifyCacheMaxText are classified every time: lexing them costs little
// next to what SQLite spends on them.
const (
	classifyCacheEntries = 4096
	classifyCacheBytes   = 16 << 20
	classifyCacheMaxText = 64 << 10
)

// classifyGen is one generation of the classification cache.
type classifyGen struct {
	m       sync.Map // query text -> *stmtInfo
	entries atomic.Int64
	bytes   atomic.Int64
}

// classifyCache is the current generation; nil until the first miss.
var classifyCache atomic.Pointer[classifyGen]

// classify returns the classification of query, from a cache keyed by the
// query text.
func classify(query string) *stmtInfo {
	g := classifyCache.Load()
	if g != nil {
		if v, ok := g.m.Load(query); ok {
			return v.(*stmtInfo)
		}
	}
	in := analyze(query)
	if len(query) > classifyCacheMaxText {
		return in
	}
	if g == nil {
		classifyCache.CompareAndSwap(nil, new(classifyGen))
		g = classifyCache.Load()
	}
	if v, loaded := g.m.LoadOrStore(query, in); loaded {
		return v.(*stmtInfo)
	}
	if g.entries.Add(1) > classifyCacheEntries || g.bytes.Add(int64(len(query))) > classifyCacheBytes {
		classifyCache.CompareAndSwap(g, new(classifyGen))
	}
	return in
}

// remember replaces the cached classification of query, when a statement
// turned out to be other than classify said (a reader refused it as a write).
func remember(query string, in *stmtInfo) {
	if g := classifyCache.Load(); g != nil && len(query) <= classifyCacheMaxText {
		g.m.Store(query, in)
	}
}

// withBegin returns query with each statement-level BEGIN (bare, DEFERRED,
// with or without TRANSACTION) rewritten to begin as lock says: BEGIN
// IMMEDIATE for TxLockImmediate and TxLockDefault, BEGIN EXCLUSIVE for
// TxLockExclusive; TxLockDeferred and queries without a BEGIN come back
// unchanged. A BEGIN IMMEDIATE or EXCLUSIVE written by the user is kept.
func (in *stmtInfo) withBegin(query string, lock TxLock) string {
	if lock == TxLockDeferred || len(in.begins) == 0 {
		return query
	}
	if in.begins[len(in.begins)-1].to > len(query) {
		// Not the text in was computed from; leave it alone.
		return query
	}
	word := "IMMEDIATE"
	if lock == TxLockExclusive {
		word = "EXCLUSIVE"
	}
	var b strings.Builder
	b.Grow(len(query) + len(in.begins)*(len(word)+1))
	prev := 0
	for _, e := range in.begins {
		b.WriteString(query[prev:e.from])
		if e.from == e.to {
			b.WriteByte(' ')
		}
		b.WriteString(word)
		prev = e.to
	}
	b.WriteString(query[prev:])
	return b.String()
}

// tokenBufs holds token slices for analyze to reuse; slices that grew past
// maxPooledTokens are left to the garbage collector.
var tokenBufs = sync.Pool{New: func() any { return new([]token) }}

const maxPooledTokens = 1 << 12

// analyze classifies query without the cache.
func analyze(query string) *stmtInfo {
	// SQLite is handed a NUL-terminated copy of the text and never sees
	// what follows a NUL byte; neither does the classifier.
	if i := strings.IndexByte(query, 0); i >= 0 {
		query = query[:i]
	}
	in := new(stmtInfo)
	buf := tokenBufs.Get().(*[]token)
	all := lex(query, (*buf)[:0])
	defer func() {
		if cap(all) <= maxPooledTokens {
			*buf = all[:0]
			tokenBufs.Put(buf)
		}
	}()
	toks := all
	n := 0
	batchable := false
	for len(toks) > 0 {
		var stmt []token
		stmt, toks = nextStatement(query, toks)
		if len(stmt) == 0 {
			continue
		}
		n++
		var f stmtFlags
		f, batchable = classifyStatement(query, stmt, &in.begins)
		in.flags |= f
		in.facts |= statementFacts(query, stmt)
	}
	if n > 1 {
		in.flags |= flagMulti
	} else if batchable {
		in.flags |= flagBatchable
	}
	return in
}

// tokKind is the kind of a token.
type tokKind uint8

const (
	tkWord   tokKind = iota + 1 // keyword or bare identifier
	tkQuoted                    // quoted identifier: "x", [x] or `x`
	tkString                    // string literal: 'x'
	tkBlob                      // blob literal: x'00'
	tkNumber                    // numeric literal
	tkParam                     // parameter: ?, ?NNN, :name, @name, $name, #name
	tkSemi                      // ;
	tkLParen                    // (
	tkRParen                    // )
	tkComma                     // ,
	tkDot                       // .
	tkEq                        // = or ==
	tkOther                     // any other operator or character
)

// token is one token of a query text: its kind and its bytes,
// text[start:end]. An unterminated string, quoted identifier or comment
// runs to the end of the text, as SQLite's tokenizer has it.
type token struct {
	kind       tokKind
	start, end int
}

// lex appends to toks the tokens of q, leaving out white space and
// comments. It follows SQLite's tokenizer (tokenize.c) in where each token
// ends, so that a keyword it sees is a keyword SQLite sees.
func lex(q string, toks []token) []token {
	i := 0
	for i < len(q) {
		start := i
		c := q[i]
		var k tokKind
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r':
			i++
			continue
		case c == 0xEF && strings.HasPrefix(q[i:], "\uFEFF"):
			// A byte-order mark is white space to SQLite.
			i += 3
			continue
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			if j := strings.IndexByte(q[i+2:], '\n'); j >= 0 {
				i += 2 + j + 1
			} else {
				i = len(q)
			}
			continue
		case c == '/' && i+2 < len(q) && q[i+1] == '*':
			if j := strings.Index(q[i+2:], "*/"); j >= 0 {
				i += 2 + j + 2
			} else {
				i = len(q)
			}
			continue
		case c == '\'':
			i, k = endQuoted(q, i), tkString
		case c == '"' || c == '`':
			i, k = endQuoted(q, i), tkQuoted
		case c == '[':
			if j := strings.IndexByte(q[i+1:], ']'); j >= 0 {
				i += 1 + j + 1
			} else {
				i = len(q)
			}
			k = tkQuoted
		case (c == 'x' || c == 'X') && i+1 < len(q) && q[i+1] == '\'':
			if j := strings.IndexByte(q[i+2:], '\''); j >= 0 {
				i += 2 + j + 1
			} else {
				i = len(q)
			}
			k = tkBlob
		case isIdentStart(c):
			i++
			for i < len(q) && isIdentChar(q[i]) {
				i++
			}
			k = tkWord
		case isDigit(c) || c == '.' && i+1 < len(q) && isDigit(q[i+1]):
			i, k = endNumber(q, i), tkNumber
		case c == '?':
			i++
			for i < len(q) && isDigit(q[i]) {
				i++
			}
			k = tkParam
		case c == '$' || c == '@' || c == ':' || c == '#':
			i, k = endVariable(q, i), tkParam
		case c == ';':
			i, k = i+1, tkSemi
		case c == '(':
			i, k = i+1, tkLParen
		case c == ')':
			i, k = i+1, tkRParen
		case c == ',':
			i, k = i+1, tkComma
		case c == '.':
			i, k = i+1, tkDot
		case c == '=':
			i, k = i+1, tkEq
			if i < len(q) && q[i] == '=' {
				i++
			}
		default:
			// Operators of two or three characters (||, <=, ->>, ...) do
			// not matter here: one token per character is enough.
			i, k = i+1, tkOther
		}
		toks = append(toks, token{kind: k, start: start, end: i})
	}
	return toks
}

// endQuoted returns the end of the string or quoted identifier that starts
// at q[i], whose quote doubles to escape itself.
func endQuoted(q string, i int) int {
	quote := q[i]
	for i++; i < len(q); i++ {
		if q[i] == quote {
			if i+1 < len(q) && q[i+1] == quote {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

// endNumber returns the end of the numeric literal that starts at q[i].
// Like SQLite, it takes identifier characters that stick to a number into
// the same (illegal) token.
func endNumber(q string, i int) int {
	if q[i] == '0' && i+2 < len(q) && (q[i+1] == 'x' || q[i+1] == 'X') && isHexDigit(q[i+2]) {
		i += 3
		for i < len(q) && (isHexDigit(q[i]) || q[i] == '_') {
			i++
		}
	} else {
		for i < len(q) && (isDigit(q[i]) || q[i] == '_') {
			i++
		}
		if i < len(q) && q[i] == '.' {
			i++
			for i < len(q) && (isDigit(q[i]) || q[i] == '_') {
				i++
			}
		}
		if i+1 < len(q) && (q[i] == 'e' || q[i] == 'E') &&
			(isDigit(q[i+1]) || (q[i+1] == '+' || q[i+1] == '-') && i+2 < len(q) && isDigit(q[i+2])) {
			i += 2
			for i < len(q) && (isDigit(q[i]) || q[i] == '_') {
				i++
			}
		}
	}
	for i < len(q) && isIdentChar(q[i]) {
		i++
	}
	return i
}

// endVariable returns the end of the parameter that starts at q[i] with one
// of $ @ : #. As in SQLite (TCL variable syntax), the name may contain "::"
// and may end in "(...)" running to the next ')' or white space.
func endVariable(q string, i int) int {
	n := 0
	for i++; i < len(q); i++ {
		c := q[i]
		switch {
		case isIdentChar(c):
			n++
		case c == '(' && n > 0:
			for i++; i < len(q) && !isSpace(q[i]) && q[i] != ')'; i++ {
			}
			if i < len(q) && q[i] == ')' {
				i++
			}
			return i
		case c == ':' && i+1 < len(q) && q[i+1] == ':':
			i++
		default:
			return i
		}
	}
	return i
}

func isDigit(c byte) bool    { return '0' <= c && c <= '9' }
func isHexDigit(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
func isSpace(c byte) bool    { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

// isIdentStart reports whether an identifier or keyword can start with c.
func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

// isIdentChar reports whether c can continue an identifier or keyword.
func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// nextStatement splits toks, which start a statement, into the statement
// and the tokens after its terminating ';'. A ';' ends the statement except
// inside the body of a CREATE TRIGGER, which ends only at a ';' that follows
// an END that itself follows a ';' (an END after anything else closes a
// CASE expression), as in SQLite's grammar and sqlite3_complete.
func nextStatement(q string, toks []token) (stmt, rest []token) {
	trigger := isCreateTrigger(q, toks)
	afterSemi, afterEnd := false, false
	for i, t := range toks {
		if t.kind == tkSemi {
			if !trigger || afterEnd {
				return toks[:i], toks[i+1:]
			}
			afterSemi, afterEnd = true, false
			continue
		}
		afterEnd = afterSemi && isWord(q, t, "END")
		afterSemi = false
	}
	return toks, nil
}

// isCreateTrigger reports whether toks start with [EXPLAIN [QUERY PLAN]]
// CREATE [TEMP|TEMPORARY] TRIGGER.
func isCreateTrigger(q string, toks []token) bool {
	p := parser{q: q, toks: toks}
	if p.accept("EXPLAIN") {
		p.accept("QUERY")
		p.accept("PLAN")
	}
	if !p.accept("CREATE") {
		return false
	}
	if !p.accept("TEMP") {
		p.accept("TEMPORARY")
	}
	return p.accept("TRIGGER")
}

// parser walks the tokens of one statement.
type parser struct {
	q    string
	toks []token
	i    int
}

// peek returns the next token; its kind is 0 at the end of the statement.
func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{}
}

// next returns the next token and moves past it.
func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

// accept moves past the next token if it is the keyword kw (upper case).
func (p *parser) accept(kw string) bool {
	if isWord(p.q, p.peek(), kw) {
		p.i++
		return true
	}
	return false
}

// acceptKind moves past the next token if it is of kind k.
func (p *parser) acceptKind(k tokKind) bool {
	if p.peek().kind == k {
		p.i++
		return true
	}
	return false
}

// skipParens moves past a parenthesized group, the next token being its
// '('. It reports false if the group is not closed.
func (p *parser) skipParens() bool {
	if !p.acceptKind(tkLParen) {
		return false
	}
	for depth := 1; p.i < len(p.toks); p.i++ {
		switch p.toks[p.i].kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
			if depth == 0 {
				p.i++
				return true
			}
		}
	}
	return false
}

// isWord reports whether t is the keyword kw, given in upper case, in any
// case. Only ASCII letters fold, as in SQLite.
func isWord(q string, t token, kw string) bool {
	return t.kind == tkWord && t.end-t.start == len(kw) && equalFoldASCII(q[t.start:t.end], kw)
}

// equalFoldASCII reports whether s equals upper, an upper-case ASCII
// string, ignoring the case of ASCII letters only.
func equalFoldASCII(s, upper string) bool {
	if len(s) != len(upper) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// name returns the text a name token stands for: an identifier, a quoted
// identifier without its quotes, or a string without its quotes, as SQLite
// accepts all three as names. Doubled quotes are left doubled, which is
// enough to compare with names that hold no quotes. ok is false when t
// cannot be a name.
func name(q string, t token) (s string, ok bool) {
	switch t.kind {
	case tkWord:
		return q[t.start:t.end], true
	case tkQuoted, tkString:
		if t.end-t.start >= 2 {
			return q[t.start+1 : t.end-1], true
		}
	}
	return "", false
}

// classifyStatement returns the flags of the one statement in stmt (not
// empty, without its ';'), and whether it is a plain INSERT, REPLACE, UPDATE
// or DELETE. For a BEGIN it appends to begins the edit withBegin makes.
func classifyStatement(q string, stmt []token, begins *[]beginEdit) (flags stmtFlags, dml bool) {
	p := parser{q: q, toks: stmt}
	first := p.next()
	if first.kind != tkWord {
		return flagWrite, false
	}
	var buf [16]byte
	switch string(upperASCII(buf[:0], q[first.start:first.end])) {
	case "SELECT", "VALUES":
		return 0, false
	case "EXPLAIN":
		// EXPLAIN [QUERY PLAN] lists the program of any statement without
		// running it, so it runs on a read-only connection (though
		// sqlite3_stmt_readonly answers for the statement explained).
		return 0, false
	case "WITH":
		return classifyWith(&p)
	case "INSERT", "REPLACE", "UPDATE", "DELETE":
		return flagWrite, true
	case "CREATE":
		// Objects in the temp schema are connection-local; so is dropping
		// or altering one named "temp.x" (an object named without its
		// schema may be in main: a write).
		if p.accept("TEMP") || p.accept("TEMPORARY") {
			return flagSession, false
		}
		p.accept("UNIQUE")
		p.accept("VIRTUAL")
		return schemaObject(&p, "TABLE", "INDEX", "VIEW", "TRIGGER"), false
	case "DROP":
		return schemaObject(&p, "TABLE", "INDEX", "VIEW", "TRIGGER"), false
	case "ALTER":
		return schemaObject(&p, "TABLE"), false
	case "ATTACH", "DETACH":
		return flagSession, false
	case "BEGIN":
		switch t := p.peek(); {
		case isWord(q, t, "IMMEDIATE"), isWord(q, t, "EXCLUSIVE"):
		case isWord(q, t, "DEFERRED"):
			*begins = append(*begins, beginEdit{from: t.start, to: t.end})
		default:
			*begins = append(*begins, beginEdit{from: first.end, to: first.end})
		}
		return flagBegin | flagTxControl, false
	case "SAVEPOINT":
		return flagSavepoint | flagTxControl, false
	case "COMMIT", "END", "RELEASE":
		return flagTxEnd | flagTxControl, false
	case "ROLLBACK":
		// ROLLBACK [TRANSACTION [name]] [TO [SAVEPOINT] name]. TO is a
		// reserved word, so it cannot be the transaction's name.
		for _, t := range stmt[1:] {
			if isWord(q, t, "TO") {
				return flagTxControl, false
			}
		}
		return flagTxEnd | flagTxControl, false
	case "PRAGMA":
		return classifyPragma(&p), false
	case "VACUUM":
		return flagWrite | flagNoTx, false
	}
	// REINDEX, ANALYZE and anything not known.
	return flagWrite, false
}

// upperASCII appends s to dst with ASCII letters in upper case. It gives up
// (returns dst as it was) when s does not fit in dst's capacity: no keyword
// is that long.
func upperASCII(dst []byte, s string) []byte {
	if len(s) > cap(dst)-len(dst) {
		return dst
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// classifyWith classifies a statement that starts with WITH, p being just
// past it: WITH [RECURSIVE] name [(columns)] AS [[NOT] MATERIALIZED] (...)
// [, ...], then the statement proper decides.
func classifyWith(p *parser) (stmtFlags, bool) {
	p.accept("RECURSIVE")
	for {
		if _, ok := name(p.q, p.next()); !ok {
			return flagWrite, false
		}
		if p.peek().kind == tkLParen && !p.skipParens() {
			return flagWrite, false
		}
		if !p.accept("AS") {
			return flagWrite, false
		}
		p.accept("NOT")
		p.accept("MATERIALIZED")
		if !p.skipParens() {
			return flagWrite, false
		}
		if !p.acceptKind(tkComma) {
			break
		}
	}
	switch t := p.peek(); {
	case isWord(p.q, t, "SELECT"), isWord(p.q, t, "VALUES"):
		return 0, false
	case isWord(p.q, t, "INSERT"), isWord(p.q, t, "REPLACE"),
		isWord(p.q, t, "UPDATE"), isWord(p.q, t, "DELETE"):
		return flagWrite, true
	}
	return flagWrite, false
}

// schemaObject classifies CREATE, DROP or ALTER, p being past the verb (and
// past UNIQUE or VIRTUAL): the next word must be one of kinds, then IF [NOT]
// EXISTS may follow, then the object's name. An
// object in the temp schema ("temp.x") is session state; anything else
// writes.
func schemaObject(p *parser, kinds ...string) stmtFlags {
	known := false
	for _, k := range kinds {
		if p.accept(k) {
			known = true
			break
		}
	}
	if !known {
		return flagWrite
	}
	if p.accept("IF") {
		p.accept("NOT")
		if !p.accept("EXISTS") {
			return flagWrite
		}
	}
	schema, ok := name(p.q, p.next())
	if ok && p.peek().kind == tkDot && equalFoldASCII(schema, "TEMP") {
		return flagSession
	}
	return flagWrite
}

// pragmaKind is how a PRAGMA affects routing.
type pragmaKind uint8

const (
	// pragmaUnknown: not a PRAGMA the driver knows; a write. The zero
	// value, what a lookup of an unknown name gives.
	_ pragmaKind = iota
	// pragmaSetting: a setting of the connection. Assigning it is
	// session state; reading it is a read.
	pragmaSetting
	// pragmaFile: a setting stored in (or changing) the database file.
	// Assigning it writes; reading it is a read.
	pragmaFile
	// pragmaAction: writes, or SQLite says it may, whatever its form.
	pragmaAction
	// pragmaRead: reads whatever its argument.
	pragmaRead
)

// pragmas maps each PRAGMA name SQLite knows, in lower case, to its kind.
// Names not here are unknown (the zero pragmaKind) and count as writes.
var pragmas = map[string]pragmaKind{
	"analysis_limit":            pragmaSetting,
	"automatic_index":           pragmaSetting,
	"busy_timeout":              pragmaSetting,
	"cache_size":                pragmaSetting,
	"cache_spill":               pragmaSetting,
	"case_sensitive_like":       pragmaSetting,
	"cell_size_check":           pragmaSetting,
	"checkpoint_fullfsync":      pragmaSetting,
	"count_changes":             pragmaSetting,
	"data_store_directory":      pragmaSetting,
	"defer_foreign_keys":        pragmaSetting,
	"empty_result_callbacks":    pragmaSetting,
	"foreign_keys":              pragmaSetting,
	"full_column_names":         pragmaSetting,
	"fullfsync":                 pragmaSetting,
	"hard_heap_limit":           pragmaSetting,
	"ignore_check_constraints":  pragmaSetting,
	"journal_size_limit":        pragmaSetting,
	"legacy_alter_table":        pragmaSetting,
	"locking_mode":              pragmaSetting,
	"mmap_size":                 pragmaSetting,
	"parser_trace":              pragmaSetting,
	"query_only":                pragmaSetting,
	"read_uncommitted":          pragmaSetting,
	"recursive_triggers":        pragmaSetting,
	"reverse_unordered_selects": pragmaSetting,
	"secure_delete":             pragmaSetting,
	"short_column_names":        pragmaSetting,
	"soft_heap_limit":           pragmaSetting,
	"synchronous":               pragmaSetting,
	"temp_store":                pragmaSetting,
	"temp_store_directory":      pragmaSetting,
	"threads":                   pragmaSetting,
	"trusted_schema":            pragmaSetting,
	"vdbe_addoptrace":           pragmaSetting,
	"vdbe_debug":                pragmaSetting,
	"vdbe_listing":              pragmaSetting,
	"vdbe_trace":                pragmaSetting,
	"wal_autocheckpoint":        pragmaSetting,
	"writable_schema":           pragmaSetting,

	"application_id":     pragmaFile,
	"auto_vacuum":        pragmaFile,
	"default_cache_size": pragmaFile,
	"encoding":           pragmaFile,
	"legacy_file_format": pragmaFile,
	"max_page_count":     pragmaFile,
	"page_size":          pragmaFile,
	"schema_version":     pragmaFile,
	"user_version":       pragmaFile,

	"incremental_vacuum": pragmaAction,
	// Even the bare query form: SQLite marks every statement that
	// holds OP_JournalMode as not read-only.
	"journal_mode":   pragmaAction,
	"optimize":       pragmaAction,
	"wal_checkpoint": pragmaAction,

	"collation_list":    pragmaRead,
	"compile_options":   pragmaRead,
	"data_version":      pragmaRead,
	"database_list":     pragmaRead,
	"foreign_key_check": pragmaRead,
	"foreign_key_list":  pragmaRead,
	"freelist_count":    pragmaRead,
	"function_list":     pragmaRead,
	"index_info":        pragmaRead,
	"index_list":        pragmaRead,
	"index_xinfo":       pragmaRead,
	"integrity_check":   pragmaRead,
	"module_list":       pragmaRead,
	"page_count":        pragmaRead,
	"pragma_list":       pragmaRead,
	"quick_check":       pragmaRead,
	"shrink_memory":     pragmaRead,
	"stats":             pragmaRead,
	"table_info":        pragmaRead,
	"table_list":        pragmaRead,
	"table_xinfo":       pragmaRead,
}

// classifyPragma classifies PRAGMA [schema.]name [= value | (value)], p
// being past PRAGMA.
func classifyPragma(p *parser) stmtFlags {
	n, ok := name(p.q, p.next())
	if ok && p.acceptKind(tkDot) {
		n, ok = name(p.q, p.next())
	}
	if !ok {
		return flagWrite
	}
	var buf [32]byte
	kind := pragmas[string(lowerASCII(buf[:0], n))]
	var assign bool
	switch t := p.peek(); t.kind {
	case 0:
	case tkEq, tkLParen:
		assign = true
	default:
		return flagWrite
	}
	switch kind {
	case pragmaRead:
		return 0
	case pragmaSetting:
		if assign {
			return flagSession
		}
		return 0
	case pragmaFile:
		if assign {
			return flagWrite
		}
		return 0
	}
	switch name := string(lowerASCII(buf[:0], n)); {
	case assign && name == "journal_mode":
		return flagWrite | flagJournalMode | flagNoTx
	case name == "wal_checkpoint":
		return flagWrite | flagNoTx
	}
	return flagWrite
}

// lowerASCII appends s to dst with ASCII letters in lower case. It gives up
// (returns dst as it was) when s does not fit in dst's capacity: no PRAGMA
// name is that long.
func lowerASCII(dst []byte, s string) []byte {
	if len(s) > cap(dst)-len(dst) {
		return dst
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// stmtFacts are facts about a query text that the routing does not need and
// a dqlite cluster does: go-dqlite fails an Exec of a statement that answers
// rows, and a Query of one that answers none, and some statements abort a
// dqlite 1.11 leader.
type stmtFacts uint8

const (
	// factRows: a statement answers rows: SELECT, VALUES, EXPLAIN, or a
	// write with a RETURNING clause.
	factRows stmtFacts = 1 << iota
	// factReturning: an INSERT, UPDATE, DELETE or REPLACE with RETURNING.
	factReturning
	// factPragma: a PRAGMA, which may or may not answer a row.
	factPragma
	// factAttach: ATTACH or DETACH.
	factAttach
	// factPageSize: a PRAGMA page_size assignment.
	factPageSize
	// factCheckpoint: PRAGMA wal_checkpoint.
	factCheckpoint
)

// statementFacts returns the facts of one statement.
func statementFacts(q string, stmt []token) stmtFacts {
	p := parser{q: q, toks: stmt}
	first := p.next()
	var buf [16]byte
	word := string(upperASCII(buf[:0], q[first.start:first.end]))
	if word == "WITH" {
		// The statement proper follows the common table expressions:
		// the first of these words outside parentheses.
		depth := 0
		word = ""
		for _, t := range stmt[1:] {
			switch t.kind {
			case tkLParen:
				depth++
			case tkRParen:
				depth--
			case tkWord:
				if depth == 0 {
					for _, w := range [...]string{"SELECT", "VALUES", "INSERT", "REPLACE", "UPDATE", "DELETE"} {
						if isWord(q, t, w) {
							word = w
						}
					}
				}
			}
			if word != "" {
				break
			}
		}
	}
	switch word {
	case "SELECT", "VALUES", "EXPLAIN":
		return factRows
	case "INSERT", "REPLACE", "UPDATE", "DELETE":
		for _, t := range stmt {
			if isWord(q, t, "RETURNING") {
				return factRows | factReturning
			}
		}
		return 0
	case "ATTACH", "DETACH":
		return factAttach
	case "PRAGMA":
		n, ok := name(q, p.next())
		if ok && p.acceptKind(tkDot) {
			n, ok = name(q, p.next())
		}
		var lb [32]byte
		switch f := factPragma; {
		case !ok:
			return f
		case string(lowerASCII(lb[:0], n)) == "wal_checkpoint":
			return f | factCheckpoint
		case string(lowerASCII(lb[:0], n)) == "page_size" && (p.peek().kind == tkEq || p.peek().kind == tkLParen):
			return f | factPageSize
		default:
			return f
		}
	}
	return 0
}
