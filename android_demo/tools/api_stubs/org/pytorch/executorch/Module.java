package org.pytorch.executorch;
public class Module { public static final int LOAD_MODE_MMAP = 1;
  public static Module load(String p, int mode, int threads) { return null; } public int loadMethod(String m) { return 0; }
  public EValue[] forward(EValue... in) { return null; } public void destroy() {} }
