/** The Agent Execution Graph: learned online from policy events, predicts next use and reuse depth. */
export { AgentExecutionGraph, callEndS, callIndexBucket, commonPrefixBlocks, type GraphEvent, type ObservedCall, type Prediction, type Step } from './aeg';
export { GapDistribution } from './gap_distribution';
export { StepStats } from './step_stats';
