package org.tensorflow.lite;
public final class Interpreter implements AutoCloseable {
  public static class Options { public Options() {} public Options setNumThreads(int n) { return this; } }
  public Interpreter(java.io.File f, Options o) {}
  public int getInputTensorCount() { return 0; } public Tensor getInputTensor(int i) { return null; } public Tensor getOutputTensor(int i) { return null; }
  public void runForMultipleInputsOutputs(Object[] in, java.util.Map<Integer, Object> out) {} public void close() {}
}
