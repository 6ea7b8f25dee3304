#include "CPageState.h"
#include <emmintrin.h>

void ps_copy_page_streaming(void *target, const void *source) {
    __m128i *to = (__m128i *)target;
    const __m128i *from = (const __m128i *)source;
    for (int i = 0; i < 4096 / 16; i += 4) {
        __m128i a = _mm_load_si128(from + i), b = _mm_load_si128(from + i + 1);
        __m128i c = _mm_load_si128(from + i + 2), d = _mm_load_si128(from + i + 3);
        _mm_stream_si128(to + i, a);
        _mm_stream_si128(to + i + 1, b);
        _mm_stream_si128(to + i + 2, c);
        _mm_stream_si128(to + i + 3, d);
    }
}

void ps_store_fence(void) { _mm_sfence(); }

void ps_cpu_relax(void) {
#if defined(__x86_64__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}
