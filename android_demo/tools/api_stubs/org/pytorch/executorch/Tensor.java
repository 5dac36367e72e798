package org.pytorch.executorch;
public abstract class Tensor { public static Tensor fromBlob(int[] d, long[] s) { return null; } public float[] getDataAsFloatArray() { return null; } }
