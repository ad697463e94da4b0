package hub

// tokenBucket enforces rate_limit on the frames one client sends: RateLimit
// tokens per second, up to RateBurst saved. Only the connection's reader
// uses it.
type tokenBucket struct {
	tokens float64
	at     int64 // unix nanoseconds of the last take; 0 before the first
}

// take takes one token at time now; false means the client is over the
// limit.
func (b *tokenBucket) take(s *Settings, now int64) bool {
	if b.at == 0 {
		b.tokens = float64(s.RateBurst)
	} else {
		b.tokens = min(float64(s.RateBurst), b.tokens+float64(now-b.at)/1e9*s.RateLimit)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
