// AudioWorklet of the live_captions page: microphone audio (the context's rate, any channel
// count) -> 16 kHz mono s16le, posted as 100 ms frames (3200 bytes) to the page.
// Downsampling averages the input over each output sample's span (a box low-pass that keeps
// aliasing down for the usual 44.1/48 kHz -> 16 kHz).
const TARGET_RATE = 16000;
const FRAME_SAMPLES = 1600; // 100 ms

class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.acc = 0;
    this.count = 0;
    this.pos = 0; // input samples since the last output sample
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const n = input[0].length;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < input.length; c++) s += input[c][i];
      this.acc += s / input.length;
      this.count += 1;
      this.pos += 1;
      if (this.pos >= this.step) {
        this.pos -= this.step;
        const v = Math.max(-1, Math.min(1, this.acc / this.count));
        this.acc = 0;
        this.count = 0;
        this.frame[this.filled++] = v < 0 ? v * 32768 : v * 32767;
        if (this.filled === FRAME_SAMPLES) {
          this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
          this.frame = new Int16Array(FRAME_SAMPLES);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
