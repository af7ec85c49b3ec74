package level2

// The Agnew & Hodgkinson (2007) filter-and-decimate cascade, as
// processing.apply_Agnew_2007 runs it: 1 s -> 2 s -> 4 s -> 12 s -> 60 s ->
// 300 s, each stage a causal FIR (scipy.signal.lfilter(b, 1.0, x), zero
// initial state) followed by keeping every Nth output starting with the
// first (DataFrame.iloc[::N]).
//
// Coefficients copied digit for digit from processing.py lines 239-333
// (wtsdby2d, wtsdby3c, wtsdby5b).

var wtsdby2d = []float64{
	0.0983262, 0.2977611, 0.4086973, 0.3138961, 0.0494246,
	-0.1507778, -0.1123764, 0.0376576, 0.0996838, 0.0154992,
	-0.0666489, -0.0346632, 0.0322767, 0.0399294, -0.0097461,
	-0.0341585, -0.0039241, 0.0246776, 0.0099725, -0.0157879,
	-0.0099098, 0.0078510, 0.0081126, -0.0026986, -0.0061424,
	0.0007108, 0.0039659, -0.0006209, -0.0017117, 0.0007240,
}

var wtsdby3c = []float64{
	0.0373766, 0.1165151, 0.2385729, 0.3083302, 0.2887327,
	0.1597948, 0.0058244, -0.0973639, -0.1051034, -0.0358455,
	0.0359044, 0.0632477, 0.0302351, -0.0168856, -0.0356758,
	-0.0190635, 0.0126188, 0.0159705, 0.0082144, -0.0087978,
	-0.0037289, -0.0017068, 0.0028335,
}

var wtsdby5b = []float64{
	0.0218528, 0.0458359, 0.0908603, 0.1359777, 0.1830881,
	0.1993418, 0.1957624, 0.1561194, 0.0994146, 0.0346412,
	-0.0236544, -0.0580081, -0.0703257, -0.0555546, -0.0287709,
	0.0032613, 0.0267938, 0.0358952, 0.0311186, 0.0134283,
	-0.0028524, -0.0170042, -0.0176765, -0.0123123, -0.0036798,
	0.0057730, 0.0059817, 0.0083501, 0.0000581, 0.0005724,
	-0.0033127, 0.0004411, -0.0030766, 0.0016604,
}

// stages is the cascade: filter and decimation factor of each stage.
var stages = [5]struct {
	b      []float64
	factor int
}{
	{wtsdby2d, 2},
	{wtsdby2d, 2},
	{wtsdby3c, 3},
	{wtsdby5b, 5},
	{wtsdby5b, 5},
}

// firStep runs one sample through a direct-form-II-transposed FIR with delay
// line z (len(b)-1): y[n] = sum b[k] x[n-k] with zero history, what
// scipy.signal.lfilter(b, 1.0, x) computes (scipy 1.10 does it with
// np.convolve, whose dot products sum in another order: the two agree to
// rounding, ~1e-16 of the signal, see docs/level2.md). The delay line is the
// whole filter state, so a stage can stop and resume between samples.
func firStep(b, z []float64, x float64) float64 {
	y := z[0] + b[0]*x
	n := len(b)
	for k := 1; k < n-1; k++ {
		z[k-1] = z[k] + b[k]*x
	}
	z[n-2] = b[n-1] * x
	return y
}
